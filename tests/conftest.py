import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_and_threads():
    """Every test starts from the same random state, and the backend is never left forced."""
    from lstmkit.nn import kernels

    torch.manual_seed(0)
    yield
    kernels.set_backend("auto")
