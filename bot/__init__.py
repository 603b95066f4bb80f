"""Psychoeducation assistant for MDMA-assisted therapy for PTSD."""
