"""Multi-object tracking of instances: Kalman filter, camera-motion compensation, association, lifecycle."""
