"""Every ROS test talks DDS over loopback only (no multicast, unicast discovery of 127.0.0.1) in a domain drawn at
random for this test run, so two runs on one machine (or a real ROS 2 system on the network) never meet. Set before
any participant of this process exists: Cyclone DDS reads its configuration when a domain is first created."""

import os
import random

LOOPBACK_URI = ('<CycloneDDS><Domain><General><Interfaces><NetworkInterface name="lo"/></Interfaces>'
                '<AllowMulticast>false</AllowMulticast></General><Discovery><Peers><Peer address="127.0.0.1"/>'
                '</Peers><ParticipantIndex>auto</ParticipantIndex><MaxAutoParticipantIndex>20'
                '</MaxAutoParticipantIndex></Discovery></Domain></CycloneDDS>')

os.environ["CYCLONEDDS_URI"] = LOOPBACK_URI
os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randrange(1, 100))
