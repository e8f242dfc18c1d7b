"""hri_msgs 2.0.0's definitions of the three messages we publish, as their .msg text (comments and the constant
list trimmed to what matters; constants do not change the CDR bytes, and REP-2011 hashes leave them out)."""

EXPRESSION = """
std_msgs/Header header
string NEUTRAL="neutral"
string ANGRY="angry"
string SAD="sad"
string HAPPY="happy"
string SURPRISED="surprised"
string DISGUSTED="disgusted"
string SCARED="scared"
string expression
float32 valence
float32 arousal
float32 confidence
"""

IDS_LIST = """
std_msgs/Header header
string[] ids
"""

NORMALIZED_ROI = """
std_msgs/Header header
float32 xmin
float32 ymin
float32 xmax
float32 ymax
float32 c
"""

DEFINITIONS = {
    "hri_msgs/msg/Expression": EXPRESSION,
    "hri_msgs/msg/IdsList": IDS_LIST,
    "hri_msgs/msg/NormalizedRegionOfInterest2D": NORMALIZED_ROI,
}
