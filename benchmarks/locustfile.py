"""Locust users for ``benchmarks/service_load.py`` (not meant to be run on its own).

Environment: ``FACELENS_KEY`` (API key), ``FACELENS_LOAD_DIR`` (folder of ``a_*.jpg`` /
``b_*.jpg`` pairs and ``probe_*.jpg``), ``FACELENS_LOAD_ROUTE`` (``verify`` or
``identify``), ``FACELENS_LOAD_RATE`` (requests per second per user).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from locust import HttpUser, constant_throughput, task

DIR = Path(os.environ.get("FACELENS_LOAD_DIR", "."))
ROUTE = os.environ.get("FACELENS_LOAD_ROUTE", "verify")
PAIRS = sorted(DIR.glob("a_*.jpg"))
PROBES = sorted(DIR.glob("probe_*.jpg"))


class FacelensUser(HttpUser):
    wait_time = constant_throughput(float(os.environ.get("FACELENS_LOAD_RATE", "1")))

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Bearer {os.environ['FACELENS_KEY']}"
        self.rng = random.Random(id(self))

    @task
    def one(self) -> None:
        if ROUTE == "verify":
            a = self.rng.choice(PAIRS)
            b = a.with_name("b_" + a.name[2:])
            files = {
                "image_a": (a.name, a.read_bytes(), "image/jpeg"),
                "image_b": (b.name, b.read_bytes(), "image/jpeg"),
            }
            self.client.post("/v1/verify", files=files, name="verify")
        else:
            p = self.rng.choice(PROBES)
            self.client.post(
                "/v1/galleries/default/identify",
                files={"image": (p.name, p.read_bytes(), "image/jpeg")},
                name="identify",
            )
