"""PyTorch DFER models: the five CLIP-based methods of the papers and the embedded baseline."""
