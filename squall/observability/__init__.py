"""What the platform records about itself: metering today; traces, metrics and logs next."""
