"""Small reusable modules."""
