"""What a sandbox uses now (seed US5): CPU, memory and workspace disk, each also as a percentage of the
sandbox's own limit (the alarms fire above 80 %: sandboxcp.metric_catalog `Container*Percent`)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from sandboxcp.domain import clock
from sandboxcp.domain.base import DomainModel

ALERT_PERCENT = 80.0


def _pct(used: float, limit: float) -> float | None:
    return round(100.0 * used / limit, 1) if limit > 0 else None


class ContainerUsage(DomainModel):
    cpu_percent: float | None = Field(default=None, description="CPU in use, % of the sandbox's CPU limit")
    cpu_cores: float = Field(description="cores in use (1.0: one core busy)")
    memory_bytes: int = Field(ge=0)
    memory_limit_bytes: int | None = None
    memory_percent: float | None = None
    disk_bytes: int | None = Field(default=None, description="bytes used in /workspace")
    disk_limit_bytes: int | None = None
    disk_percent: float | None = None
    sampled_at: datetime

    @classmethod
    def of(
        cls,
        *,
        cpu_cores_used: float,
        cpu_limit: float,
        memory_bytes: int,
        memory_limit_bytes: int,
        disk_bytes: int | None,
        disk_limit_bytes: int | None,
    ) -> ContainerUsage:
        return cls(
            cpu_cores=round(max(0.0, cpu_cores_used), 3),
            cpu_percent=_pct(max(0.0, cpu_cores_used), cpu_limit),
            memory_bytes=max(0, memory_bytes),
            memory_limit_bytes=memory_limit_bytes or None,
            memory_percent=_pct(max(0, memory_bytes), memory_limit_bytes),
            disk_bytes=disk_bytes,
            disk_limit_bytes=disk_limit_bytes,
            disk_percent=_pct(disk_bytes, disk_limit_bytes)
            if disk_bytes is not None and disk_limit_bytes
            else None,
            sampled_at=clock.now(),
        )

    def with_limits(self, cpu_cores: float, memory_bytes: int, disk_bytes: int) -> ContainerUsage:
        """Percentages against the session's own limits where the runtime could not tell its limits."""
        return self.model_copy(
            update={
                "cpu_percent": self.cpu_percent
                if self.cpu_percent is not None
                else _pct(self.cpu_cores, cpu_cores),
                "memory_limit_bytes": self.memory_limit_bytes or memory_bytes,
                "memory_percent": self.memory_percent
                if self.memory_percent is not None
                else _pct(self.memory_bytes, memory_bytes),
                "disk_limit_bytes": self.disk_limit_bytes
                or (disk_bytes if self.disk_bytes is not None else None),
                "disk_percent": self.disk_percent
                if self.disk_percent is not None or self.disk_bytes is None
                else _pct(self.disk_bytes, disk_bytes),
            }
        )

    def over(self, percent: float = ALERT_PERCENT) -> list[str]:
        """The dimensions above `percent` of their limit."""
        figures = {"cpu": self.cpu_percent, "memory": self.memory_percent, "disk": self.disk_percent}
        return [name for name, value in figures.items() if value is not None and value > percent]
