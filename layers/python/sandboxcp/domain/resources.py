"""Resource limits (FR-001): parsing and the allowed ranges. Strict types: `max_processes` is a JSON integer
(not `"64"`, `64.0` or `true`); cpu, memory and disk are strings as in the contract."""

from __future__ import annotations

import re

from pydantic import ConfigDict, Field, field_validator

from sandboxcp.domain.base import DomainModel

_QUANTITY = re.compile(r"^([0-9]+)(Mi|Gi)$")
_CPU = r"^[0-9]+(\.[0-9]+)?$"

CPU_RANGE = (0.5, 4.0)
MEMORY_RANGE_MB = (256, 8192)
DISK_RANGE_MB = (1024, 51200)


def quantity_mb(value: str) -> int:
    m = _QUANTITY.match(value)
    if not m:
        raise ValueError(f"'{value}' is not a quantity like 512Mi or 2Gi")
    n = int(m.group(1))
    return n * 1024 if m.group(2) == "Gi" else n


class ResourceLimit(DomainModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    cpu: str = Field(default="1", pattern=_CPU, max_length=16, examples=["1"])
    memory: str = Field(default="512Mi", max_length=16, examples=["512Mi"])
    disk: str = Field(default="1Gi", max_length=16, examples=["1Gi"])
    max_processes: int = Field(default=128, ge=32, le=1024)

    @field_validator("cpu")
    @classmethod
    def _cpu_range(cls, v: str) -> str:
        if not CPU_RANGE[0] <= float(v) <= CPU_RANGE[1]:
            raise ValueError(f"cpu must be between {CPU_RANGE[0]} and {CPU_RANGE[1]} cores")
        return v

    @field_validator("memory")
    @classmethod
    def _memory_range(cls, v: str) -> str:
        if not MEMORY_RANGE_MB[0] <= quantity_mb(v) <= MEMORY_RANGE_MB[1]:
            raise ValueError("memory must be between 256Mi and 8Gi")
        return v

    @field_validator("disk")
    @classmethod
    def _disk_range(cls, v: str) -> str:
        if not DISK_RANGE_MB[0] <= quantity_mb(v) <= DISK_RANGE_MB[1]:
            raise ValueError("disk must be between 1Gi and 50Gi")
        return v

    @property
    def cpu_cores(self) -> float:
        return float(self.cpu)

    @property
    def memory_mb(self) -> int:
        return quantity_mb(self.memory)

    @property
    def disk_mb(self) -> int:
        return quantity_mb(self.disk)


class ResourceLimitRequest(ResourceLimit):
    """Resources as a request body gives them (contract `ResourceLimit`): cpu, memory and disk are required;
    max_processes defaults to 128."""

    cpu: str = Field(pattern=_CPU, max_length=16, examples=["1"])
    memory: str = Field(max_length=16, examples=["512Mi"])
    disk: str = Field(max_length=16, examples=["1Gi"])
