"""robotac."""
