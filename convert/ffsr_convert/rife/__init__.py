"""RIFE frame interpolation (Huang et al.): the network, its checkpoint loader and the ONNX
wrapper FFmpeg's single-input ``dnn_processing`` runs (two frames side by side in, the
middle frame out). Written from the published architecture; see docs/interpolation.md."""
