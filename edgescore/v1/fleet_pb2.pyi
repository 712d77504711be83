from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListDevicesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RuntimeInfo(_message.Message):
    __slots__ = ("name", "version", "execution_providers", "formats", "answers_by_architecture", "delegates")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    FORMATS_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_BY_ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    DELEGATES_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    execution_providers: _containers.RepeatedScalarFieldContainer[str]
    formats: _containers.RepeatedScalarFieldContainer[str]
    answers_by_architecture: bool
    delegates: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., execution_providers: _Optional[_Iterable[str]] = ..., formats: _Optional[_Iterable[str]] = ..., answers_by_architecture: bool = ..., delegates: _Optional[_Iterable[str]] = ...) -> None: ...

class AgentInfo(_message.Message):
    __slots__ = ("agent_id", "hostname", "busy", "connected_seconds", "runtimes", "tags")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    BUSY_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RUNTIMES_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    hostname: str
    busy: bool
    connected_seconds: float
    runtimes: _containers.RepeatedCompositeFieldContainer[RuntimeInfo]
    tags: _containers.ScalarMap[str, str]
    def __init__(self, agent_id: _Optional[str] = ..., hostname: _Optional[str] = ..., busy: bool = ..., connected_seconds: _Optional[float] = ..., runtimes: _Optional[_Iterable[_Union[RuntimeInfo, _Mapping]]] = ..., tags: _Optional[_Mapping[str, str]] = ...) -> None: ...

class DeviceClassInfo(_message.Message):
    __slots__ = ("device_class", "agents_online", "agents_busy", "queue_depth", "measurements_done", "runtimes", "agents")
    DEVICE_CLASS_FIELD_NUMBER: _ClassVar[int]
    AGENTS_ONLINE_FIELD_NUMBER: _ClassVar[int]
    AGENTS_BUSY_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENTS_DONE_FIELD_NUMBER: _ClassVar[int]
    RUNTIMES_FIELD_NUMBER: _ClassVar[int]
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    device_class: str
    agents_online: int
    agents_busy: int
    queue_depth: int
    measurements_done: int
    runtimes: _containers.RepeatedCompositeFieldContainer[RuntimeInfo]
    agents: _containers.RepeatedCompositeFieldContainer[AgentInfo]
    def __init__(self, device_class: _Optional[str] = ..., agents_online: _Optional[int] = ..., agents_busy: _Optional[int] = ..., queue_depth: _Optional[int] = ..., measurements_done: _Optional[int] = ..., runtimes: _Optional[_Iterable[_Union[RuntimeInfo, _Mapping]]] = ..., agents: _Optional[_Iterable[_Union[AgentInfo, _Mapping]]] = ...) -> None: ...

class ListDevicesResponse(_message.Message):
    __slots__ = ("devices",)
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[DeviceClassInfo]
    def __init__(self, devices: _Optional[_Iterable[_Union[DeviceClassInfo, _Mapping]]] = ...) -> None: ...
