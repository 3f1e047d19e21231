"""Video input: decoding with typed errors (decode, sniff), face tracks (tracks, scan), footage search (footage).

No Qt; the service's video operations are in :mod:`fasfinder.service_video`.
"""
