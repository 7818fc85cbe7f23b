"""Registry entries of MLX's ``layers/upsample.py`` family."""
