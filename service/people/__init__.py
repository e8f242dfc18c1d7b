"""Who a face is, where it looks and how well it can be read: person ids from face descriptors (registry.py), head
pose from 68 landmarks (pose.py), the quality of a face (quality.py), and the reader that runs the nets on confirmed
tracks only, as seldom as it can (reader.py)."""
