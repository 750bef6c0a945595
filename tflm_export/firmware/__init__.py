"""What a firmware build needs: C sources of the model and an arm-none-eabi compile check."""
