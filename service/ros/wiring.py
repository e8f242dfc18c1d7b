"""How the app turns ROS on (pure until then: DDS modules are imported only when ROS output or a `ros:` source is
configured)."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def open_ros(settings, runtime):
    """The ROS publisher for `serve --ros` (None without it). With ROS output or a `ros:` source, the DDS domain is
    started now, so that one that cannot start (a bad CYCLONEDDS_URI or ROS_DOMAIN_ID) stops the service before it
    serves, with one line (RosError)."""
    if runtime is None:
        if settings.ros.enabled:
            log.warning("ROS output is on but there are no live sources (--no-live): nothing will be published")
        return None
    if not (settings.ros.enabled or any(spec.kind.value == "ros" for spec in runtime.specs)):
        return None
    from service.ros.dds import participant

    participant()
    if not settings.ros.enabled:
        return None
    from service.ros.publisher import start_publisher

    return start_publisher(settings.ros, runtime)
