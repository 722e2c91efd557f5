"""SR tests run torch on one thread: these networks are small, and on a shared 2-core machine two
threads wait on each other (measured 5-10x slower). Restored after each test."""
import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
