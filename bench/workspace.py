"""Where the benchmark keeps models, logs and reports, and the environment its children get."""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Dict

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = PROJECT_ROOT / "bench"
WORK_DIR = BENCH_DIR / "work"
DEFAULT_CONFIG = BENCH_DIR / "configs" / "rasa_default.yml"
OUR_CONFIG = PROJECT_ROOT / "config.yml"
FAQ_CASES = PROJECT_ROOT / "tests" / "heldout" / "faq_cases.yml"
RISK_CASES = PROJECT_ROOT / "tests" / "heldout" / "risk_cases.yml"

# Bench-only ports, so a `make run` on the usual ones is never disturbed.
RASA_PORT = 55005
ACTION_PORT = 55055

# Never let a benchmark reach a real clinician: alert and console settings of
# the caller's environment are dropped, escalations go to a throwaway database.
_DROPPED_PREFIXES = ("ESCALATION_", "SMTP_", "CONSOLE_", "UNANSWERED_", "RASA_MODEL_DIR", "RASA_ENDPOINTS_FILE")


@dataclass(frozen=True)
class Contender:
    """One configuration under test and where its model lives."""

    name: str
    config: Path
    model_dir: Path

    @property
    def model(self) -> Path:
        """The trained model archive (`rasa train --fixed-model-name model`)."""
        return self.model_dir / "model.tar.gz"

    @property
    def training_record(self) -> Path:
        """JSON written after training: wall time, peak memory, when."""
        return self.model_dir / "training.json"


@dataclass(frozen=True)
class Workspace:
    """The work directory of one run (`bench/work`, or `bench/work/quick` for --quick)."""

    root: Path

    @classmethod
    def create(cls, quick: bool) -> "Workspace":
        """Makes the directories of a full or quick run."""
        workspace = cls(WORK_DIR / "quick" if quick else WORK_DIR)
        for directory in (workspace.root, workspace.logs, workspace.evaluations, workspace.profiles):
            directory.mkdir(parents=True, exist_ok=True)
        return workspace

    @property
    def logs(self) -> Path:
        """Output of every child process."""
        return self.root / "logs"

    @property
    def evaluations(self) -> Path:
        """`python -m bot evaluate --json` reports."""
        return self.root / "evaluations"

    @property
    def profiles(self) -> Path:
        """cProfile dumps and summaries."""
        return self.root / "profiles"

    @property
    def endpoints_file(self) -> Path:
        """The production endpoints.yml with the bench action server port."""
        return self.root / "endpoints.yml"

    def contender(self, name: str, config: Path) -> Contender:
        """The configuration `name`, trained into `<root>/<name>`."""
        return Contender(name, config, self.root / name)

    def write_endpoints(self) -> Path:
        """Copies endpoints.yml with the action server on the bench port."""
        source = (PROJECT_ROOT / "endpoints.yml").read_text(encoding="utf-8")
        endpoints, count = re.subn(r"(//(?:127\.0\.0\.1|localhost)):5055\b", rf"\g<1>:{ACTION_PORT}", source)
        if count != 1:
            raise RuntimeError(f"endpoints.yml: expected one action_endpoint url on port 5055, found {count}")
        self.endpoints_file.write_text(endpoints, encoding="utf-8")
        return self.endpoints_file

    @property
    def credentials_file(self) -> Path:
        """credentials.yml with the REST channel only."""
        return self.root / "credentials.yml"

    def write_credentials(self) -> Path:
        """The REST channel section of credentials.yml: the one channel under test, needing no secrets."""
        channels = yaml.safe_load((PROJECT_ROOT / "credentials.yml").read_text(encoding="utf-8")) or {}
        rest = {name: value for name, value in channels.items() if name == "rest" or name.endswith("RestInput")}
        if not rest:
            raise RuntimeError("credentials.yml has no REST channel (`rest:` or a RestInput subclass)")
        self.credentials_file.write_text(yaml.safe_dump(rest, sort_keys=False), encoding="utf-8")
        return self.credentials_file

    def child_env(self) -> Dict[str, str]:
        """Environment of every child: project importable, bench ports, no real alerts."""
        env = {key: value for key, value in os.environ.items() if not key.startswith(_DROPPED_PREFIXES)}
        env.update(
            {
                "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p),
                "RASA_PORT": str(RASA_PORT),
                "ACTION_SERVER_PORT": str(ACTION_PORT),
                "RASA_ENDPOINTS_FILE": str(self.endpoints_file),
                "RASA_AUTH_TOKEN": env.get("RASA_AUTH_TOKEN") or secrets.token_urlsafe(24),
                "ACTION_SERVER_TOKEN": env.get("ACTION_SERVER_TOKEN") or secrets.token_urlsafe(32),
                "ESCALATION_DB_URL": f"sqlite:///{self.root / 'escalations.db'}",
                "ESCALATION_SPOOL_DIR": str(self.root / "escalation-spool"),
                # Benchmark messages are not questions people asked.
                "UNANSWERED_DB_URL": f"sqlite:///{self.root / 'unanswered.db'}",
                "RASA_TELEMETRY_ENABLED": "false",
                "TF_CPP_MIN_LOG_LEVEL": "2",
                "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
                "PYTHONWARNINGS": "ignore::DeprecationWarning",
            }
        )
        return env
