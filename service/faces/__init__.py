"""Who a face is: face-api.js's 68-point landmarks and 128-d face descriptors (service/faces/nets.py)."""

from service.faces.nets import (FACEAPI_MATCH_DISTANCE, MEASURED_MATCH_DISTANCE, DescriptorNet, FaceNetsError,
                                LandmarkNet, descriptor_distance, eye_roll)

__all__ = ["FACEAPI_MATCH_DISTANCE", "MEASURED_MATCH_DISTANCE", "DescriptorNet", "FaceNetsError", "LandmarkNet",
           "descriptor_distance", "eye_roll"]
