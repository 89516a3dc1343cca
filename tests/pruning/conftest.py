import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Small kernels on a shared 2-core machine run faster and steadier on one thread; a module
    asks for it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
