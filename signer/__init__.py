"""The client side: a USB key (or SoftHSM token) that enrolls and signs payments."""
