from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ArtifactFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ARTIFACT_FORMAT_UNSPECIFIED: _ClassVar[ArtifactFormat]
    ONNX: _ClassVar[ArtifactFormat]
    TFLITE: _ClassVar[ArtifactFormat]

class Precision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRECISION_UNSPECIFIED: _ClassVar[Precision]
    FP32: _ClassVar[Precision]
    INT8: _ClassVar[Precision]

class Metric(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METRIC_UNSPECIFIED: _ClassVar[Metric]
    LATENCY: _ClassVar[Metric]
    ENERGY: _ClassVar[Metric]

class Provenance(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROVENANCE_UNSPECIFIED: _ClassVar[Provenance]
    COMPUTED: _ClassVar[Provenance]
    MEASURED: _ClassVar[Provenance]
    PREDICTED: _ClassVar[Provenance]
    CACHED: _ClassVar[Provenance]

class FailureKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAILURE_KIND_UNSPECIFIED: _ClassVar[FailureKind]
    EXPORT_FAILED: _ClassVar[FailureKind]
    UNSUPPORTED_OP: _ClassVar[FailureKind]
    RUNTIME_ERROR: _ClassVar[FailureKind]
    TIMEOUT: _ClassVar[FailureKind]
    AGENT_LOST: _ClassVar[FailureKind]
    PARITY_FAILED: _ClassVar[FailureKind]
    NOT_FOUND: _ClassVar[FailureKind]
    ARTIFACT_CORRUPT: _ClassVar[FailureKind]
    UNSUPPORTED_FORMAT: _ClassVar[FailureKind]
    UNSUPPORTED_ACCELERATOR: _ClassVar[FailureKind]
ARTIFACT_FORMAT_UNSPECIFIED: ArtifactFormat
ONNX: ArtifactFormat
TFLITE: ArtifactFormat
PRECISION_UNSPECIFIED: Precision
FP32: Precision
INT8: Precision
METRIC_UNSPECIFIED: Metric
LATENCY: Metric
ENERGY: Metric
PROVENANCE_UNSPECIFIED: Provenance
COMPUTED: Provenance
MEASURED: Provenance
PREDICTED: Provenance
CACHED: Provenance
FAILURE_KIND_UNSPECIFIED: FailureKind
EXPORT_FAILED: FailureKind
UNSUPPORTED_OP: FailureKind
RUNTIME_ERROR: FailureKind
TIMEOUT: FailureKind
AGENT_LOST: FailureKind
PARITY_FAILED: FailureKind
NOT_FOUND: FailureKind
ARTIFACT_CORRUPT: FailureKind
UNSUPPORTED_FORMAT: FailureKind
UNSUPPORTED_ACCELERATOR: FailureKind

class ArchSpec(_message.Message):
    __slots__ = ("nb201", "nb101", "nats_sss", "macro", "vit", "onnx", "fbnet", "num_classes", "input_resolution")
    NB201_FIELD_NUMBER: _ClassVar[int]
    NB101_FIELD_NUMBER: _ClassVar[int]
    NATS_SSS_FIELD_NUMBER: _ClassVar[int]
    MACRO_FIELD_NUMBER: _ClassVar[int]
    VIT_FIELD_NUMBER: _ClassVar[int]
    ONNX_FIELD_NUMBER: _ClassVar[int]
    FBNET_FIELD_NUMBER: _ClassVar[int]
    NUM_CLASSES_FIELD_NUMBER: _ClassVar[int]
    INPUT_RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    nb201: str
    nb101: Nb101Spec
    nats_sss: str
    macro: MacroSpec
    vit: VitSpec
    onnx: OnnxModel
    fbnet: str
    num_classes: int
    input_resolution: int
    def __init__(self, nb201: _Optional[str] = ..., nb101: _Optional[_Union[Nb101Spec, _Mapping]] = ..., nats_sss: _Optional[str] = ..., macro: _Optional[_Union[MacroSpec, _Mapping]] = ..., vit: _Optional[_Union[VitSpec, _Mapping]] = ..., onnx: _Optional[_Union[OnnxModel, _Mapping]] = ..., fbnet: _Optional[str] = ..., num_classes: _Optional[int] = ..., input_resolution: _Optional[int] = ...) -> None: ...

class Nb101Spec(_message.Message):
    __slots__ = ("adjacency", "ops")
    ADJACENCY_FIELD_NUMBER: _ClassVar[int]
    OPS_FIELD_NUMBER: _ClassVar[int]
    adjacency: _containers.RepeatedScalarFieldContainer[int]
    ops: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, adjacency: _Optional[_Iterable[int]] = ..., ops: _Optional[_Iterable[str]] = ...) -> None: ...

class MacroBlock(_message.Message):
    __slots__ = ("kernel", "expansion", "width", "depth", "stride", "squeeze_excitation")
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    EXPANSION_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    STRIDE_FIELD_NUMBER: _ClassVar[int]
    SQUEEZE_EXCITATION_FIELD_NUMBER: _ClassVar[int]
    kernel: int
    expansion: float
    width: int
    depth: int
    stride: int
    squeeze_excitation: bool
    def __init__(self, kernel: _Optional[int] = ..., expansion: _Optional[float] = ..., width: _Optional[int] = ..., depth: _Optional[int] = ..., stride: _Optional[int] = ..., squeeze_excitation: bool = ...) -> None: ...

class MacroSpec(_message.Message):
    __slots__ = ("stem_width", "stages", "head_width")
    STEM_WIDTH_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    HEAD_WIDTH_FIELD_NUMBER: _ClassVar[int]
    stem_width: int
    stages: _containers.RepeatedCompositeFieldContainer[MacroBlock]
    head_width: int
    def __init__(self, stem_width: _Optional[int] = ..., stages: _Optional[_Iterable[_Union[MacroBlock, _Mapping]]] = ..., head_width: _Optional[int] = ...) -> None: ...

class VitSpec(_message.Message):
    __slots__ = ("embed_dim", "depth", "num_heads", "mlp_ratio", "patch_size")
    EMBED_DIM_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    NUM_HEADS_FIELD_NUMBER: _ClassVar[int]
    MLP_RATIO_FIELD_NUMBER: _ClassVar[int]
    PATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    embed_dim: int
    depth: int
    num_heads: _containers.RepeatedScalarFieldContainer[int]
    mlp_ratio: _containers.RepeatedScalarFieldContainer[float]
    patch_size: int
    def __init__(self, embed_dim: _Optional[int] = ..., depth: _Optional[int] = ..., num_heads: _Optional[_Iterable[int]] = ..., mlp_ratio: _Optional[_Iterable[float]] = ..., patch_size: _Optional[int] = ...) -> None: ...

class OnnxModel(_message.Message):
    __slots__ = ("model", "input_name")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    model: bytes
    input_name: str
    def __init__(self, model: _Optional[bytes] = ..., input_name: _Optional[str] = ...) -> None: ...

class DataSource(_message.Message):
    __slots__ = ("kind", "dataset_id")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[DataSource.Kind]
        SYNTHETIC: _ClassVar[DataSource.Kind]
        BUNDLED_CIFAR10: _ClassVar[DataSource.Kind]
        REGISTERED: _ClassVar[DataSource.Kind]
    KIND_UNSPECIFIED: DataSource.Kind
    SYNTHETIC: DataSource.Kind
    BUNDLED_CIFAR10: DataSource.Kind
    REGISTERED: DataSource.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    kind: DataSource.Kind
    dataset_id: str
    def __init__(self, kind: _Optional[_Union[DataSource.Kind, str]] = ..., dataset_id: _Optional[str] = ...) -> None: ...

class ProxySettings(_message.Message):
    __slots__ = ("batch_size", "seed", "init", "repeats", "data", "extra")
    class ExtraEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    INIT_FIELD_NUMBER: _ClassVar[int]
    REPEATS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    batch_size: int
    seed: int
    init: str
    repeats: int
    data: DataSource
    extra: _containers.ScalarMap[str, str]
    def __init__(self, batch_size: _Optional[int] = ..., seed: _Optional[int] = ..., init: _Optional[str] = ..., repeats: _Optional[int] = ..., data: _Optional[_Union[DataSource, _Mapping]] = ..., extra: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ProxyRequest(_message.Message):
    __slots__ = ("name", "settings")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    settings: ProxySettings
    def __init__(self, name: _Optional[str] = ..., settings: _Optional[_Union[ProxySettings, _Mapping]] = ...) -> None: ...

class MeasurementSettings(_message.Message):
    __slots__ = ("warmup_runs", "min_runs", "min_seconds", "max_seconds", "threads", "batch_size", "input_shape", "format", "precision", "cooldown_below_celsius", "execution_provider", "delegate")
    WARMUP_RUNS_FIELD_NUMBER: _ClassVar[int]
    MIN_RUNS_FIELD_NUMBER: _ClassVar[int]
    MIN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_SECONDS_FIELD_NUMBER: _ClassVar[int]
    THREADS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    INPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    COOLDOWN_BELOW_CELSIUS_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    DELEGATE_FIELD_NUMBER: _ClassVar[int]
    warmup_runs: int
    min_runs: int
    min_seconds: float
    max_seconds: float
    threads: int
    batch_size: int
    input_shape: _containers.RepeatedScalarFieldContainer[int]
    format: ArtifactFormat
    precision: Precision
    cooldown_below_celsius: float
    execution_provider: str
    delegate: str
    def __init__(self, warmup_runs: _Optional[int] = ..., min_runs: _Optional[int] = ..., min_seconds: _Optional[float] = ..., max_seconds: _Optional[float] = ..., threads: _Optional[int] = ..., batch_size: _Optional[int] = ..., input_shape: _Optional[_Iterable[int]] = ..., format: _Optional[_Union[ArtifactFormat, str]] = ..., precision: _Optional[_Union[Precision, str]] = ..., cooldown_below_celsius: _Optional[float] = ..., execution_provider: _Optional[str] = ..., delegate: _Optional[str] = ...) -> None: ...

class DeviceTarget(_message.Message):
    __slots__ = ("device_class", "settings")
    DEVICE_CLASS_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    device_class: str
    settings: MeasurementSettings
    def __init__(self, device_class: _Optional[str] = ..., settings: _Optional[_Union[MeasurementSettings, _Mapping]] = ...) -> None: ...

class LatencyStats(_message.Message):
    __slots__ = ("n", "mean_ms", "median_ms", "p90_ms", "p99_ms", "std_ms", "min_ms", "max_ms", "samples_ms", "load_ms", "peak_rss_bytes", "engine_build_ms")
    N_FIELD_NUMBER: _ClassVar[int]
    MEAN_MS_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_MS_FIELD_NUMBER: _ClassVar[int]
    P90_MS_FIELD_NUMBER: _ClassVar[int]
    P99_MS_FIELD_NUMBER: _ClassVar[int]
    STD_MS_FIELD_NUMBER: _ClassVar[int]
    MIN_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_MS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_MS_FIELD_NUMBER: _ClassVar[int]
    LOAD_MS_FIELD_NUMBER: _ClassVar[int]
    PEAK_RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    ENGINE_BUILD_MS_FIELD_NUMBER: _ClassVar[int]
    n: int
    mean_ms: float
    median_ms: float
    p90_ms: float
    p99_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    samples_ms: _containers.RepeatedScalarFieldContainer[float]
    load_ms: float
    peak_rss_bytes: int
    engine_build_ms: float
    def __init__(self, n: _Optional[int] = ..., mean_ms: _Optional[float] = ..., median_ms: _Optional[float] = ..., p90_ms: _Optional[float] = ..., p99_ms: _Optional[float] = ..., std_ms: _Optional[float] = ..., min_ms: _Optional[float] = ..., max_ms: _Optional[float] = ..., samples_ms: _Optional[_Iterable[float]] = ..., load_ms: _Optional[float] = ..., peak_rss_bytes: _Optional[int] = ..., engine_build_ms: _Optional[float] = ...) -> None: ...

class EnergyStats(_message.Message):
    __slots__ = ("measured", "sensor", "method", "sample_rate_hz", "samples", "mean_power_w", "energy_per_inference_mj", "note")
    MEASURED_FIELD_NUMBER: _ClassVar[int]
    SENSOR_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    MEAN_POWER_W_FIELD_NUMBER: _ClassVar[int]
    ENERGY_PER_INFERENCE_MJ_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    measured: bool
    sensor: str
    method: str
    sample_rate_hz: float
    samples: int
    mean_power_w: float
    energy_per_inference_mj: float
    note: str
    def __init__(self, measured: bool = ..., sensor: _Optional[str] = ..., method: _Optional[str] = ..., sample_rate_hz: _Optional[float] = ..., samples: _Optional[int] = ..., mean_power_w: _Optional[float] = ..., energy_per_inference_mj: _Optional[float] = ..., note: _Optional[str] = ...) -> None: ...

class DeviceEnv(_message.Message):
    __slots__ = ("cpu_temp_celsius", "cpu_freq_mhz", "cpu_max_freq_mhz", "throttled")
    CPU_TEMP_CELSIUS_FIELD_NUMBER: _ClassVar[int]
    CPU_FREQ_MHZ_FIELD_NUMBER: _ClassVar[int]
    CPU_MAX_FREQ_MHZ_FIELD_NUMBER: _ClassVar[int]
    THROTTLED_FIELD_NUMBER: _ClassVar[int]
    cpu_temp_celsius: float
    cpu_freq_mhz: float
    cpu_max_freq_mhz: float
    throttled: str
    def __init__(self, cpu_temp_celsius: _Optional[float] = ..., cpu_freq_mhz: _Optional[float] = ..., cpu_max_freq_mhz: _Optional[float] = ..., throttled: _Optional[str] = ...) -> None: ...

class ThermalTrace(_message.Message):
    __slots__ = ("cooldown_target_celsius", "cooldown_reached", "cooldown_waited_seconds", "cooldown_temps_celsius", "min_cpu_freq_mhz", "max_cpu_freq_mhz", "freq_samples", "throttle_reasons")
    COOLDOWN_TARGET_CELSIUS_FIELD_NUMBER: _ClassVar[int]
    COOLDOWN_REACHED_FIELD_NUMBER: _ClassVar[int]
    COOLDOWN_WAITED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    COOLDOWN_TEMPS_CELSIUS_FIELD_NUMBER: _ClassVar[int]
    MIN_CPU_FREQ_MHZ_FIELD_NUMBER: _ClassVar[int]
    MAX_CPU_FREQ_MHZ_FIELD_NUMBER: _ClassVar[int]
    FREQ_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    THROTTLE_REASONS_FIELD_NUMBER: _ClassVar[int]
    cooldown_target_celsius: float
    cooldown_reached: bool
    cooldown_waited_seconds: float
    cooldown_temps_celsius: _containers.RepeatedScalarFieldContainer[float]
    min_cpu_freq_mhz: float
    max_cpu_freq_mhz: float
    freq_samples: int
    throttle_reasons: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cooldown_target_celsius: _Optional[float] = ..., cooldown_reached: bool = ..., cooldown_waited_seconds: _Optional[float] = ..., cooldown_temps_celsius: _Optional[_Iterable[float]] = ..., min_cpu_freq_mhz: _Optional[float] = ..., max_cpu_freq_mhz: _Optional[float] = ..., freq_samples: _Optional[int] = ..., throttle_reasons: _Optional[_Iterable[str]] = ...) -> None: ...

class ConstraintObjective(_message.Message):
    __slots__ = ("proxy", "latency_budget_ms", "metric")
    class LatencyBudgetMsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    PROXY_FIELD_NUMBER: _ClassVar[int]
    LATENCY_BUDGET_MS_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    proxy: str
    latency_budget_ms: _containers.ScalarMap[str, float]
    metric: Metric
    def __init__(self, proxy: _Optional[str] = ..., latency_budget_ms: _Optional[_Mapping[str, float]] = ..., metric: _Optional[_Union[Metric, str]] = ...) -> None: ...

class MnasObjective(_message.Message):
    __slots__ = ("proxy", "device_class", "target_latency_ms", "w", "raw_proxy", "metric")
    PROXY_FIELD_NUMBER: _ClassVar[int]
    DEVICE_CLASS_FIELD_NUMBER: _ClassVar[int]
    TARGET_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    W_FIELD_NUMBER: _ClassVar[int]
    RAW_PROXY_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    proxy: str
    device_class: str
    target_latency_ms: float
    w: float
    raw_proxy: bool
    metric: Metric
    def __init__(self, proxy: _Optional[str] = ..., device_class: _Optional[str] = ..., target_latency_ms: _Optional[float] = ..., w: _Optional[float] = ..., raw_proxy: bool = ..., metric: _Optional[_Union[Metric, str]] = ...) -> None: ...

class ParetoObjective(_message.Message):
    __slots__ = ("proxy", "device_class", "study", "metric")
    PROXY_FIELD_NUMBER: _ClassVar[int]
    DEVICE_CLASS_FIELD_NUMBER: _ClassVar[int]
    STUDY_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    proxy: str
    device_class: str
    study: str
    metric: Metric
    def __init__(self, proxy: _Optional[str] = ..., device_class: _Optional[str] = ..., study: _Optional[str] = ..., metric: _Optional[_Union[Metric, str]] = ...) -> None: ...

class WeightedRankObjective(_message.Message):
    __slots__ = ("proxy_weights", "latency_weights", "metric")
    class ProxyWeightsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class LatencyWeightsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    PROXY_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    proxy_weights: _containers.ScalarMap[str, float]
    latency_weights: _containers.ScalarMap[str, float]
    metric: Metric
    def __init__(self, proxy_weights: _Optional[_Mapping[str, float]] = ..., latency_weights: _Optional[_Mapping[str, float]] = ..., metric: _Optional[_Union[Metric, str]] = ...) -> None: ...

class Objective(_message.Message):
    __slots__ = ("constraint", "mnas", "pareto", "weighted_rank", "report_percentiles")
    CONSTRAINT_FIELD_NUMBER: _ClassVar[int]
    MNAS_FIELD_NUMBER: _ClassVar[int]
    PARETO_FIELD_NUMBER: _ClassVar[int]
    WEIGHTED_RANK_FIELD_NUMBER: _ClassVar[int]
    REPORT_PERCENTILES_FIELD_NUMBER: _ClassVar[int]
    constraint: ConstraintObjective
    mnas: MnasObjective
    pareto: ParetoObjective
    weighted_rank: WeightedRankObjective
    report_percentiles: bool
    def __init__(self, constraint: _Optional[_Union[ConstraintObjective, _Mapping]] = ..., mnas: _Optional[_Union[MnasObjective, _Mapping]] = ..., pareto: _Optional[_Union[ParetoObjective, _Mapping]] = ..., weighted_rank: _Optional[_Union[WeightedRankObjective, _Mapping]] = ..., report_percentiles: bool = ...) -> None: ...

class ItemStatus(_message.Message):
    __slots__ = ("code", "message", "failure_kind")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_KIND_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    failure_kind: FailureKind
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., failure_kind: _Optional[_Union[FailureKind, str]] = ...) -> None: ...

class ProxyResult(_message.Message):
    __slots__ = ("name", "value", "unit", "transform", "provenance", "status", "settings", "compute_seconds", "flags", "components")
    class ComponentsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    TRANSFORM_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: float
    unit: str
    transform: str
    provenance: Provenance
    status: ItemStatus
    settings: ProxySettings
    compute_seconds: float
    flags: _containers.RepeatedScalarFieldContainer[str]
    components: _containers.ScalarMap[str, float]
    def __init__(self, name: _Optional[str] = ..., value: _Optional[float] = ..., unit: _Optional[str] = ..., transform: _Optional[str] = ..., provenance: _Optional[_Union[Provenance, str]] = ..., status: _Optional[_Union[ItemStatus, _Mapping]] = ..., settings: _Optional[_Union[ProxySettings, _Mapping]] = ..., compute_seconds: _Optional[float] = ..., flags: _Optional[_Iterable[str]] = ..., components: _Optional[_Mapping[str, float]] = ...) -> None: ...

class LatencyResult(_message.Message):
    __slots__ = ("device_class", "provenance", "status", "stats", "settings", "agent_id", "runtime", "runtime_version", "execution_provider", "artifact_sha256", "env_before", "env_after", "throttled", "uncertainty_ms", "job_id", "thermal", "quantization", "energy", "execution_providers_used", "provider_fallback", "delegate", "nodes_per_provider")
    class NodesPerProviderEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    DEVICE_CLASS_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_VERSION_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_SHA256_FIELD_NUMBER: _ClassVar[int]
    ENV_BEFORE_FIELD_NUMBER: _ClassVar[int]
    ENV_AFTER_FIELD_NUMBER: _ClassVar[int]
    THROTTLED_FIELD_NUMBER: _ClassVar[int]
    UNCERTAINTY_MS_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    THERMAL_FIELD_NUMBER: _ClassVar[int]
    QUANTIZATION_FIELD_NUMBER: _ClassVar[int]
    ENERGY_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_PROVIDERS_USED_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FALLBACK_FIELD_NUMBER: _ClassVar[int]
    DELEGATE_FIELD_NUMBER: _ClassVar[int]
    NODES_PER_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    device_class: str
    provenance: Provenance
    status: ItemStatus
    stats: LatencyStats
    settings: MeasurementSettings
    agent_id: str
    runtime: str
    runtime_version: str
    execution_provider: str
    artifact_sha256: str
    env_before: DeviceEnv
    env_after: DeviceEnv
    throttled: bool
    uncertainty_ms: float
    job_id: str
    thermal: ThermalTrace
    quantization: str
    energy: EnergyStats
    execution_providers_used: _containers.RepeatedScalarFieldContainer[str]
    provider_fallback: bool
    delegate: str
    nodes_per_provider: _containers.ScalarMap[str, int]
    def __init__(self, device_class: _Optional[str] = ..., provenance: _Optional[_Union[Provenance, str]] = ..., status: _Optional[_Union[ItemStatus, _Mapping]] = ..., stats: _Optional[_Union[LatencyStats, _Mapping]] = ..., settings: _Optional[_Union[MeasurementSettings, _Mapping]] = ..., agent_id: _Optional[str] = ..., runtime: _Optional[str] = ..., runtime_version: _Optional[str] = ..., execution_provider: _Optional[str] = ..., artifact_sha256: _Optional[str] = ..., env_before: _Optional[_Union[DeviceEnv, _Mapping]] = ..., env_after: _Optional[_Union[DeviceEnv, _Mapping]] = ..., throttled: bool = ..., uncertainty_ms: _Optional[float] = ..., job_id: _Optional[str] = ..., thermal: _Optional[_Union[ThermalTrace, _Mapping]] = ..., quantization: _Optional[str] = ..., energy: _Optional[_Union[EnergyStats, _Mapping]] = ..., execution_providers_used: _Optional[_Iterable[str]] = ..., provider_fallback: bool = ..., delegate: _Optional[str] = ..., nodes_per_provider: _Optional[_Mapping[str, int]] = ...) -> None: ...

class ObjectiveResult(_message.Message):
    __slots__ = ("value", "feasible", "pareto_rank", "percentiles", "status")
    class PercentilesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    VALUE_FIELD_NUMBER: _ClassVar[int]
    FEASIBLE_FIELD_NUMBER: _ClassVar[int]
    PARETO_RANK_FIELD_NUMBER: _ClassVar[int]
    PERCENTILES_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    value: float
    feasible: bool
    pareto_rank: int
    percentiles: _containers.ScalarMap[str, float]
    status: ItemStatus
    def __init__(self, value: _Optional[float] = ..., feasible: bool = ..., pareto_rank: _Optional[int] = ..., percentiles: _Optional[_Mapping[str, float]] = ..., status: _Optional[_Union[ItemStatus, _Mapping]] = ...) -> None: ...
