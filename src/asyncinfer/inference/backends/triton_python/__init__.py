"""Triton's python backend in process: ``TritonPythonModel`` model.py files run unchanged.

``pb_utils`` is asyncinfer's implementation of Triton's published ``triton_python_backend_utils``
API; loading a model.py makes ``import triton_python_backend_utils`` resolve to it. ``adapter``
runs a ``TritonPythonModel`` class as asyncinfer's thread or process instances run a ``Model``.
See docs/inference/triton-python-models.md.
"""
