"""The one Grad-CAM++ (fasfinder.gradcam) against the reference package, pytorch-grad-cam's GradCAMPlusPlus."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAMPlusPlus
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from fasfinder.gradcam import LayerRecorder, cam_weights, grad_cam_plus_plus

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _small_net(seed=0):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 12, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(12, 5),
    )
    return net.eval()


def _ours(net, layer, x, classes):
    with LayerRecorder([layer]) as rec, torch.enable_grad():
        out = net(x)
        (acts,), (grads,) = rec.gradients(sum(out[i, c] for i, c in enumerate(classes)))
    return grad_cam_plus_plus(acts, grads, x.shape[-2:])


@pytest.mark.parametrize("layer_index", [2, 4])  # the 2nd and 3rd convolutions (8 x 8 and 4 x 4 cells)
def test_same_maps_as_pytorch_grad_cam(layer_index):
    net = _small_net()
    layer = net[layer_index]
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    classes = [0, 3, 1, 4]
    with GradCAMPlusPlus(model=net, target_layers=[layer]) as cam:
        ref = cam(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes])
    ours = _ours(net, layer, x, classes)
    assert ours.shape == ref.shape == (4, 16, 16) and ours.dtype == np.float32
    assert np.abs(ours - ref).max() < 1e-6
    assert ours.max() == pytest.approx(1.0, abs=1e-5) and ours.min() >= 0.0
    # the maps depend on the class explained (a batch is not one map repeated)
    assert np.abs(_ours(net, layer, x, [2, 2, 2, 2]) - ours).max() > 0.05


def test_weights_follow_the_formula_on_a_hand_example():
    a = np.zeros((1, 1, 2, 2), np.float64)
    a[0, 0] = [[1.0, 2.0], [0.0, 1.0]]  # sum = 4
    g = np.zeros_like(a)
    g[0, 0] = [[0.5, -1.0], [0.0, 2.0]]
    alpha = g**2 / (2 * g**2 + 4.0 * g**3 + 1e-6)
    alpha[g == 0] = 0
    expected = (np.maximum(g, 0) * alpha).sum()
    assert cam_weights(a, g)[0, 0] == pytest.approx(expected, rel=1e-12)


def test_dtype_is_kept_and_output_is_scaled():
    rng = np.random.default_rng(0)
    a = rng.random((2, 6, 4, 4))
    g = rng.normal(size=(2, 6, 4, 4))
    m64 = grad_cam_plus_plus(a, g, (9, 7))
    m32 = grad_cam_plus_plus(a.astype(np.float32), g.astype(np.float32), (9, 7))
    assert m64.shape == (2, 9, 7) and m64.dtype == np.float32
    assert 0 < np.abs(m64 - m32).max() < 1e-5  # float64 arithmetic kept (not cast to float32 first)
    assert grad_cam_plus_plus(a, g).shape == (2, 4, 4)
    assert grad_cam_plus_plus(a[:0], g[:0], (9, 7)).shape == (0, 9, 7)
    flat = grad_cam_plus_plus(np.zeros((1, 2, 3, 3)), np.zeros((1, 2, 3, 3)), (5, 5))
    assert np.array_equal(flat, np.zeros((1, 5, 5), np.float32))  # no gradient: an all-zero map, no NaN
    with pytest.raises(ValueError):
        grad_cam_plus_plus(a[0], g[0])


def test_recorder_sees_every_pass_and_unused_passes_get_zero_gradients():
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    x1, x2 = torch.rand(1, 3, 5, 5), torch.rand(1, 3, 7, 7)
    with LayerRecorder([conv]) as rec, torch.enable_grad():
        y1, _y2 = conv(x1), conv(x2)  # the second pass does not feed the target
        acts, grads = rec.gradients(y1.sum())
    assert [i for i, _ in rec.passes] == [0, 0]
    assert acts[0].shape == (1, 4, 5, 5) and acts[1].shape == (1, 4, 7, 7)
    assert torch.equal(grads[0], torch.ones_like(grads[0])) and not grads[1].any()
    assert not conv._forward_hooks  # hooks removed on exit
