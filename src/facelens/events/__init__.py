"""events: tracks + matches -> events -> sinks (JSON Lines, webhook, MQTT, in-process).

Event types: ``track_started``, ``identified``, ``unknown_face``, ``track_ended``,
``source_lost``, ``source_restored``. Every event is a flat JSON object with at least
``type``, ``time``, ``frame``, ``track_id`` and ``identity`` (null when unknown); see
docs/events.md.
"""

from facelens.events.event import EVENT_TYPES, Event
from facelens.events.sinks import (
    EventBus,
    JsonlSink,
    MemorySink,
    MqttSink,
    Sink,
    WebhookSink,
    parse_sink,
    sign,
)

__all__ = [
    "EVENT_TYPES",
    "Event",
    "EventBus",
    "JsonlSink",
    "MemorySink",
    "MqttSink",
    "Sink",
    "WebhookSink",
    "parse_sink",
    "sign",
]
