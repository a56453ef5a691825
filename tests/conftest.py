"""Suite-wide fixtures."""
import pytest


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread per test: the models here are small, and pytest-xdist already runs one worker
    per core, so more threads only fight over the two cores (several times slower on a busy box)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
