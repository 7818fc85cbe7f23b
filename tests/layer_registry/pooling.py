"""Registry entries of MLX's ``layers/pooling.py`` family."""
