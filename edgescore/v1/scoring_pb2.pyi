from edgescore.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScoreRequest(_message.Message):
    __slots__ = ("request_id", "arch", "proxies", "proxy_defaults", "devices", "objective", "allow_predicted", "no_cache", "latency_timeout_seconds", "priority")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    PROXIES_FIELD_NUMBER: _ClassVar[int]
    PROXY_DEFAULTS_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVE_FIELD_NUMBER: _ClassVar[int]
    ALLOW_PREDICTED_FIELD_NUMBER: _ClassVar[int]
    NO_CACHE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    arch: _common_pb2.ArchSpec
    proxies: _containers.RepeatedCompositeFieldContainer[_common_pb2.ProxyRequest]
    proxy_defaults: _common_pb2.ProxySettings
    devices: _containers.RepeatedCompositeFieldContainer[_common_pb2.DeviceTarget]
    objective: _common_pb2.Objective
    allow_predicted: bool
    no_cache: bool
    latency_timeout_seconds: float
    priority: int
    def __init__(self, request_id: _Optional[str] = ..., arch: _Optional[_Union[_common_pb2.ArchSpec, _Mapping]] = ..., proxies: _Optional[_Iterable[_Union[_common_pb2.ProxyRequest, _Mapping]]] = ..., proxy_defaults: _Optional[_Union[_common_pb2.ProxySettings, _Mapping]] = ..., devices: _Optional[_Iterable[_Union[_common_pb2.DeviceTarget, _Mapping]]] = ..., objective: _Optional[_Union[_common_pb2.Objective, _Mapping]] = ..., allow_predicted: bool = ..., no_cache: bool = ..., latency_timeout_seconds: _Optional[float] = ..., priority: _Optional[int] = ...) -> None: ...

class ScoreResult(_message.Message):
    __slots__ = ("request_id", "space", "canonical_arch", "arch_hash", "proxies", "latencies", "objective", "server_version", "seconds")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    CANONICAL_ARCH_FIELD_NUMBER: _ClassVar[int]
    ARCH_HASH_FIELD_NUMBER: _ClassVar[int]
    PROXIES_FIELD_NUMBER: _ClassVar[int]
    LATENCIES_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVE_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    space: str
    canonical_arch: str
    arch_hash: str
    proxies: _containers.RepeatedCompositeFieldContainer[_common_pb2.ProxyResult]
    latencies: _containers.RepeatedCompositeFieldContainer[_common_pb2.LatencyResult]
    objective: _common_pb2.ObjectiveResult
    server_version: str
    seconds: float
    def __init__(self, request_id: _Optional[str] = ..., space: _Optional[str] = ..., canonical_arch: _Optional[str] = ..., arch_hash: _Optional[str] = ..., proxies: _Optional[_Iterable[_Union[_common_pb2.ProxyResult, _Mapping]]] = ..., latencies: _Optional[_Iterable[_Union[_common_pb2.LatencyResult, _Mapping]]] = ..., objective: _Optional[_Union[_common_pb2.ObjectiveResult, _Mapping]] = ..., server_version: _Optional[str] = ..., seconds: _Optional[float] = ...) -> None: ...

class ScoreStreamItem(_message.Message):
    __slots__ = ("request_id", "result", "error")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    result: ScoreResult
    error: _common_pb2.ItemStatus
    def __init__(self, request_id: _Optional[str] = ..., result: _Optional[_Union[ScoreResult, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.ItemStatus, _Mapping]] = ...) -> None: ...

class ListProxiesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ProxyInfo(_message.Message):
    __slots__ = ("name", "description", "unit", "transform", "needs_data", "needs_labels", "defaults", "reference")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    TRANSFORM_FIELD_NUMBER: _ClassVar[int]
    NEEDS_DATA_FIELD_NUMBER: _ClassVar[int]
    NEEDS_LABELS_FIELD_NUMBER: _ClassVar[int]
    DEFAULTS_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    unit: str
    transform: str
    needs_data: bool
    needs_labels: bool
    defaults: _common_pb2.ProxySettings
    reference: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., unit: _Optional[str] = ..., transform: _Optional[str] = ..., needs_data: bool = ..., needs_labels: bool = ..., defaults: _Optional[_Union[_common_pb2.ProxySettings, _Mapping]] = ..., reference: _Optional[str] = ...) -> None: ...

class ListProxiesResponse(_message.Message):
    __slots__ = ("proxies",)
    PROXIES_FIELD_NUMBER: _ClassVar[int]
    proxies: _containers.RepeatedCompositeFieldContainer[ProxyInfo]
    def __init__(self, proxies: _Optional[_Iterable[_Union[ProxyInfo, _Mapping]]] = ...) -> None: ...

class ListSearchSpacesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SearchSpaceInfo(_message.Message):
    __slots__ = ("name", "description", "example", "fields", "default_num_classes", "default_input_resolution", "available")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    EXAMPLE_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_NUM_CLASSES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_INPUT_RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    example: str
    fields: _containers.ScalarMap[str, str]
    default_num_classes: int
    default_input_resolution: int
    available: bool
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., example: _Optional[str] = ..., fields: _Optional[_Mapping[str, str]] = ..., default_num_classes: _Optional[int] = ..., default_input_resolution: _Optional[int] = ..., available: bool = ...) -> None: ...

class ListSearchSpacesResponse(_message.Message):
    __slots__ = ("spaces",)
    SPACES_FIELD_NUMBER: _ClassVar[int]
    spaces: _containers.RepeatedCompositeFieldContainer[SearchSpaceInfo]
    def __init__(self, spaces: _Optional[_Iterable[_Union[SearchSpaceInfo, _Mapping]]] = ...) -> None: ...

class RegisterDatasetRequest(_message.Message):
    __slots__ = ("name", "images", "shape", "labels")
    NAME_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    name: str
    images: bytes
    shape: _containers.RepeatedScalarFieldContainer[int]
    labels: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., images: _Optional[bytes] = ..., shape: _Optional[_Iterable[int]] = ..., labels: _Optional[_Iterable[int]] = ...) -> None: ...

class RegisterDatasetResponse(_message.Message):
    __slots__ = ("dataset_id",)
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    def __init__(self, dataset_id: _Optional[str] = ...) -> None: ...
