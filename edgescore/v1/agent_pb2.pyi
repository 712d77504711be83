from edgescore.v1 import common_pb2 as _common_pb2
from edgescore.v1 import fleet_pb2 as _fleet_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Capabilities(_message.Message):
    __slots__ = ("hostname", "board_model", "cpu_model", "cpu_cores", "memory_bytes", "os", "python", "runtimes", "device_class", "tags", "agent_version", "machine")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    BOARD_MODEL_FIELD_NUMBER: _ClassVar[int]
    CPU_MODEL_FIELD_NUMBER: _ClassVar[int]
    CPU_CORES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    PYTHON_FIELD_NUMBER: _ClassVar[int]
    RUNTIMES_FIELD_NUMBER: _ClassVar[int]
    DEVICE_CLASS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    MACHINE_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    board_model: str
    cpu_model: str
    cpu_cores: int
    memory_bytes: int
    os: str
    python: str
    runtimes: _containers.RepeatedCompositeFieldContainer[_fleet_pb2.RuntimeInfo]
    device_class: str
    tags: _containers.ScalarMap[str, str]
    agent_version: str
    machine: str
    def __init__(self, hostname: _Optional[str] = ..., board_model: _Optional[str] = ..., cpu_model: _Optional[str] = ..., cpu_cores: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., os: _Optional[str] = ..., python: _Optional[str] = ..., runtimes: _Optional[_Iterable[_Union[_fleet_pb2.RuntimeInfo, _Mapping]]] = ..., device_class: _Optional[str] = ..., tags: _Optional[_Mapping[str, str]] = ..., agent_version: _Optional[str] = ..., machine: _Optional[str] = ...) -> None: ...

class Register(_message.Message):
    __slots__ = ("capabilities", "agent_id")
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    capabilities: Capabilities
    agent_id: str
    def __init__(self, capabilities: _Optional[_Union[Capabilities, _Mapping]] = ..., agent_id: _Optional[str] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("busy_job_id", "env")
    BUSY_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    busy_job_id: str
    env: _common_pb2.DeviceEnv
    def __init__(self, busy_job_id: _Optional[str] = ..., env: _Optional[_Union[_common_pb2.DeviceEnv, _Mapping]] = ...) -> None: ...

class JobResult(_message.Message):
    __slots__ = ("job_id", "stats", "settings", "runtime", "runtime_version", "execution_provider", "env_before", "env_after", "throttled", "thermal", "energy", "execution_providers_used", "provider_fallback", "delegate", "nodes_per_provider")
    class NodesPerProviderEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_VERSION_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    ENV_BEFORE_FIELD_NUMBER: _ClassVar[int]
    ENV_AFTER_FIELD_NUMBER: _ClassVar[int]
    THROTTLED_FIELD_NUMBER: _ClassVar[int]
    THERMAL_FIELD_NUMBER: _ClassVar[int]
    ENERGY_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_PROVIDERS_USED_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FALLBACK_FIELD_NUMBER: _ClassVar[int]
    DELEGATE_FIELD_NUMBER: _ClassVar[int]
    NODES_PER_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    stats: _common_pb2.LatencyStats
    settings: _common_pb2.MeasurementSettings
    runtime: str
    runtime_version: str
    execution_provider: str
    env_before: _common_pb2.DeviceEnv
    env_after: _common_pb2.DeviceEnv
    throttled: bool
    thermal: _common_pb2.ThermalTrace
    energy: _common_pb2.EnergyStats
    execution_providers_used: _containers.RepeatedScalarFieldContainer[str]
    provider_fallback: bool
    delegate: str
    nodes_per_provider: _containers.ScalarMap[str, int]
    def __init__(self, job_id: _Optional[str] = ..., stats: _Optional[_Union[_common_pb2.LatencyStats, _Mapping]] = ..., settings: _Optional[_Union[_common_pb2.MeasurementSettings, _Mapping]] = ..., runtime: _Optional[str] = ..., runtime_version: _Optional[str] = ..., execution_provider: _Optional[str] = ..., env_before: _Optional[_Union[_common_pb2.DeviceEnv, _Mapping]] = ..., env_after: _Optional[_Union[_common_pb2.DeviceEnv, _Mapping]] = ..., throttled: bool = ..., thermal: _Optional[_Union[_common_pb2.ThermalTrace, _Mapping]] = ..., energy: _Optional[_Union[_common_pb2.EnergyStats, _Mapping]] = ..., execution_providers_used: _Optional[_Iterable[str]] = ..., provider_fallback: bool = ..., delegate: _Optional[str] = ..., nodes_per_provider: _Optional[_Mapping[str, int]] = ...) -> None: ...

class JobFailure(_message.Message):
    __slots__ = ("job_id", "kind", "detail")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    kind: _common_pb2.FailureKind
    detail: str
    def __init__(self, job_id: _Optional[str] = ..., kind: _Optional[_Union[_common_pb2.FailureKind, str]] = ..., detail: _Optional[str] = ...) -> None: ...

class AgentMessage(_message.Message):
    __slots__ = ("register", "heartbeat", "result", "failure")
    REGISTER_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    register: Register
    heartbeat: Heartbeat
    result: JobResult
    failure: JobFailure
    def __init__(self, register: _Optional[_Union[Register, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., result: _Optional[_Union[JobResult, _Mapping]] = ..., failure: _Optional[_Union[JobFailure, _Mapping]] = ...) -> None: ...

class Registered(_message.Message):
    __slots__ = ("agent_id", "heartbeat_interval_seconds", "server_version")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    heartbeat_interval_seconds: float
    server_version: str
    def __init__(self, agent_id: _Optional[str] = ..., heartbeat_interval_seconds: _Optional[float] = ..., server_version: _Optional[str] = ...) -> None: ...

class Artifact(_message.Message):
    __slots__ = ("sha256", "format", "precision", "data", "input_name", "space", "canonical_arch", "num_classes")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    INPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    CANONICAL_ARCH_FIELD_NUMBER: _ClassVar[int]
    NUM_CLASSES_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    format: _common_pb2.ArtifactFormat
    precision: _common_pb2.Precision
    data: bytes
    input_name: str
    space: str
    canonical_arch: str
    num_classes: int
    def __init__(self, sha256: _Optional[str] = ..., format: _Optional[_Union[_common_pb2.ArtifactFormat, str]] = ..., precision: _Optional[_Union[_common_pb2.Precision, str]] = ..., data: _Optional[bytes] = ..., input_name: _Optional[str] = ..., space: _Optional[str] = ..., canonical_arch: _Optional[str] = ..., num_classes: _Optional[int] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "artifact", "settings", "timeout_seconds")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    artifact: Artifact
    settings: _common_pb2.MeasurementSettings
    timeout_seconds: float
    def __init__(self, job_id: _Optional[str] = ..., artifact: _Optional[_Union[Artifact, _Mapping]] = ..., settings: _Optional[_Union[_common_pb2.MeasurementSettings, _Mapping]] = ..., timeout_seconds: _Optional[float] = ...) -> None: ...

class CancelJob(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ServerMessage(_message.Message):
    __slots__ = ("registered", "job", "cancel")
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    registered: Registered
    job: Job
    cancel: CancelJob
    def __init__(self, registered: _Optional[_Union[Registered, _Mapping]] = ..., job: _Optional[_Union[Job, _Mapping]] = ..., cancel: _Optional[_Union[CancelJob, _Mapping]] = ...) -> None: ...
