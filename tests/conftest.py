from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _two_threads():
    """Tests run on CI's 2 cores; keep torch from oversubscribing them."""
    torch.set_num_threads(2)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    """``host:port`` of a local S3 endpoint (moto's server, on loopback) with an empty bucket
    ``sweep_support.BUCKET``; stopped by process group at the end of the session."""
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    from sweep_support import BUCKET, free_port

    port = free_port()
    log = (tmp_path_factory.mktemp("s3") / "moto.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        start_new_session=True,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    try:
        deadline = time.time() + 60
        while True:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/{BUCKET}", method="PUT")
                urllib.request.urlopen(request, timeout=2).close()  # creates the bucket
                break
            except OSError:
                assert server.poll() is None, "the S3 endpoint exited at start"
                assert time.time() < deadline, "the S3 endpoint did not answer within 60 s"
                time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
