"""Registry entries of MLX's ``layers/quantized.py`` family."""
