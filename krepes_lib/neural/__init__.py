"""Optional PyTorch-based neural tools (eNTK kernels, NeuralEF)."""
