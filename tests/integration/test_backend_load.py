"""A worker reads its backend's own load endpoint on an interval and carries it in its load
reports; a provider without one reports none. Real NATS, a real worker, simulated engines."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import nats
import pytest

from services.simulator.engine import EngineSettings
from services.simulator.server import SimulatorSettings, start_simulator
from services.workers.http import BackendHttp
from services.workers.service import Worker
from shared import subjects
from shared.client import new_id
from shared.config import Config, ModelMappingsFile, ProviderSpec, RuntimeFile
from shared.messages import LoadReport, load_decoder


@pytest.mark.parametrize("load_format, endpoint", [("vllm", "/metrics"), ("llamacpp", "/slots")])
async def test_a_worker_reports_what_its_engine_says_it_is_running(nats_url: str, load_format: str,
                                                                   endpoint: str) -> None:
    engine = EngineSettings(max_seqs=1, load_format=load_format)  # type: ignore[arg-type]
    async with await start_simulator(SimulatorSettings("openai", engine=engine)) as sim:
        model = sim.settings.models[0]
        polled, plain = f"p{new_id()}", f"q{new_id()}"
        spec = {"type": "vllm", "base_url": sim.url, "models": [model]}
        config = Config(directory=Path("."), providers={
            polled: ProviderSpec.model_validate({**spec, "load_endpoint": endpoint}),
            plain: ProviderSpec.model_validate(spec)}, mappings=ModelMappingsFile(),
            runtime=RuntimeFile.model_validate({"worker": {"load_report_s": 0.1, "backend_load_s": 0.1}}))
        nc = await nats.connect(nats_url)
        http = BackendHttp()
        worker = Worker(nc, config, [polled, plain], http)
        reports: dict[str, LoadReport] = {}

        async def on_load(msg: nats.aio.msg.Msg) -> None:
            report = load_decoder.decode(msg.data)
            reports[report.provider] = report

        await nc.subscribe(subjects.LOAD_ALL, cb=on_load)
        await worker.start()
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}],
                "simulator": {"ttft_ms": 3000}}  # held long enough to be seen
        try:
            async with httpx.AsyncClient(base_url=sim.url, timeout=10) as client:
                held = [asyncio.create_task(client.post("/v1/chat/completions", json=body)) for _ in range(2)]
                for _ in range(100):
                    seen = reports.get(polled)
                    if seen is not None and seen.backend_running == 1:
                        break
                    await asyncio.sleep(0.05)
                seen = reports[polled]
                assert seen.backend_running == 1
                if load_format == "vllm":
                    assert seen.backend_waiting == 1 and seen.backend_kv_usage is not None
                assert reports[plain].backend_running is None and reports[plain].backend_kv_usage is None
                for task in held:
                    task.cancel()
        finally:
            await worker.stop(grace_s=0.0)
            await http.aclose()
            await nc.close()
