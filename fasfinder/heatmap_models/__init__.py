"""Lightweight face recognizers with an optional Grad-CAM++ 4th input channel (issue 6).

* :mod:`.backbones` -- torchvision ShuffleNetV2-1.0x / MobileNetV3-Large / EfficientNet-B0 as
  128-d embedding networks, RGB (``base``) or RGB+H (``heatmap``, first convolution widened to 4
  input channels: RGB filters kept, the 4th initialised from their mean);
* :mod:`.arcface` -- the additive angular margin head (ArcFace);
* :mod:`.heatmap` -- the heatmap definition used at training *and* query time (Grad-CAM++ of the
  PyTorch port of dlib's ResNet at ``level2`` with the self-projection target, the same map as
  :func:`fasfinder.explain.explain_face` ``.chip_heatmap``, computed by a faster path), and the
  input crops (dlib's aligned 150 px chip resized to the model's input size);
* :mod:`.data` -- the training/validation split (BENCHMARKS.md section 4), the ``.npy`` cache of
  crops, heatmaps and teacher embeddings, and batch augmentation;
* :mod:`.train` -- the resumable, seeded training loop and the export to ``models/``.
"""
