"""Notices: one person asked to answer one warning (叫应), their state, their chase, and their answer."""
