"""ROS 2 without a ROS install: REP-155 faces and expressions out, and camera topics in, through a Cyclone DDS
participant (the `cyclonedds` package, extra `ros`). Importing this package imports no DDS code; its modules do."""
