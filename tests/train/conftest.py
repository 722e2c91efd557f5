"""Training tests run torch on one intra-op thread: their networks are tiny, and on a shared 2-core
machine two OpenMP threads wait on each other (measured 5-10x slower). Restored after each test.
Tests that need no torch (phantom, datasets, evaluate) run unchanged where torch is absent."""
import importlib.util

import pytest


@pytest.fixture(autouse=True)
def one_torch_thread():
    if importlib.util.find_spec("torch") is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
