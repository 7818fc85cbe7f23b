"""Registry entries of MLX's ``layers/convolution_transpose.py`` family."""
