"""C++ sources of e5kit's native CPU kernels, compiled at first use (see e5kit/model/native_attention.py)."""
