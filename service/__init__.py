"""Real-time emotion perception: frames in, faces tracked, 16-frame windows classified, emotion events out."""
