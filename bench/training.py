"""Trains each configuration from a cold cache and records how long it took."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import sys
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Optional

import yaml

from bench.processes import last_log_line, run_measured
from bench.progress import clock, say
from bench.workspace import PROJECT_ROOT, Contender, Workspace


@dataclass(frozen=True)
class TrainingResult:
    """Wall time and peak memory of one `rasa train`."""

    wall_seconds: float
    peak_rss_mb: float
    trained_at: str
    config: str
    inputs: str = ""
    data: str = ""
    reused: bool = False


class TrainingFailed(RuntimeError):
    """`rasa train` exited with an error."""


def default_config_drift(config: Path) -> Optional[str]:
    """Why the committed default config differs from the installed Rasa's, or None."""
    spec = importlib.util.find_spec("rasa")  # finds the package without importing it
    origin = Path(spec.origin) if spec and spec.origin else Path("rasa/__init__.py")
    installed_path = origin.parent / "engine" / "recipes" / "config_files" / "default_config.yml"
    if not installed_path.exists():
        return f"cannot find Rasa's default config at {installed_path}"
    ours = yaml.safe_load(config.read_text(encoding="utf-8"))
    installed = yaml.safe_load(installed_path.read_text(encoding="utf-8"))
    for key in ("pipeline", "policies", "language", "recipe"):
        if ours.get(key) != installed.get(key):
            return f"{config.name}: `{key}` differs from {installed_path}"
    return None


def write_quick_config(source: Path, target: Path, epochs: int) -> Path:
    """The same configuration with every `epochs` cut down (harness checks only)."""
    document: Dict[str, Any] = yaml.safe_load(source.read_text(encoding="utf-8"))
    for part in ("pipeline", "policies"):
        for component in document.get(part) or []:
            if "epochs" in component:
                component["epochs"] = epochs
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(
        f"# {source.name} with epochs cut to {epochs} by `python -m bench --quick`: not a real benchmark.\n"
        + yaml.safe_dump(document, sort_keys=False),
        encoding="utf-8",
    )
    return target


def data_fingerprint() -> str:
    """A hash of the training data and domain, the same for every contender."""
    digest = hashlib.sha256()
    for path in [PROJECT_ROOT / "domain.yml", *sorted((PROJECT_ROOT / "data").rglob("*.yml"))]:
        digest.update(str(path.relative_to(PROJECT_ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def inputs_fingerprint(config: Path) -> str:
    """A hash of everything a model is trained from: config, domain and data."""
    return hashlib.sha256(config.read_bytes() + data_fingerprint().encode()).hexdigest()[:16]


def reuse(contender: Contender) -> Optional[TrainingResult]:
    """The record of an earlier training of this contender if its model is there and its inputs unchanged."""
    if not contender.model.exists() or not contender.training_record.exists():
        say(f"no earlier {contender.name} model in {contender.model_dir}")
        return None
    record = json.loads(contender.training_record.read_text(encoding="utf-8"))
    if record.get("inputs") != inputs_fingerprint(contender.config):
        say(f"the {contender.name} model in {contender.model_dir} was trained on other data or config")
        return None
    record["reused"] = True
    return TrainingResult(**record)


def train(contender: Contender, workspace: Workspace) -> TrainingResult:
    """`rasa train --config ... --out ...` with an empty cache, so every component really trains."""
    inputs, data = inputs_fingerprint(contender.config), data_fingerprint()
    cache = workspace.root / "rasa-cache" / contender.name
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(contender.model_dir, ignore_errors=True)
    contender.model_dir.mkdir(parents=True)
    env = workspace.child_env()
    env["RASA_CACHE_DIRECTORY"] = str(cache)
    command = [
        str(Path(sys.executable).with_name("rasa")), "train",
        "--config", str(contender.config),
        "--domain", str(PROJECT_ROOT / "domain.yml"),
        "--data", str(PROJECT_ROOT / "data"),
        "--out", str(contender.model_dir),
        "--fixed-model-name", "model",
        "--force",
    ]
    log = workspace.logs / f"train-{contender.name}.log"
    say(f"training {contender.name} ({contender.config.relative_to(PROJECT_ROOT)}), log: {log}")

    def heartbeat(elapsed: float) -> None:
        say(f"  training {contender.name}: {clock(elapsed)} so far | {last_log_line(log)}")

    try:
        finished = run_measured(command, env, PROJECT_ROOT, log, heartbeat=heartbeat)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    if finished.returncode != 0 or not contender.model.exists():
        raise TrainingFailed(f"training {contender.name} failed (exit {finished.returncode}); see {log}")
    result = TrainingResult(
        wall_seconds=finished.wall_seconds,
        peak_rss_mb=finished.peak_rss_mb,
        trained_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        config=str(contender.config.relative_to(PROJECT_ROOT)),
        inputs=inputs,
        data=data,
    )
    contender.training_record.write_text(json.dumps(asdict(result), indent=2), encoding="utf-8")
    say(f"trained {contender.name} in {clock(result.wall_seconds)} (peak RSS {result.peak_rss_mb:.0f} MB)")
    return result
