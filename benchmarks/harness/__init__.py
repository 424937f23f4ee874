"""What ``socrec bench reliability`` and the reliability and integration tests drive workers with:
the rig (:mod:`.rig`), the generated event streams (:mod:`.streams`) and the replay oracle
(:mod:`.oracle`)."""
