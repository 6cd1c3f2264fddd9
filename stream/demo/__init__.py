"""The seeded fintech demo: a scenario generator (:mod:`.scenario`) and ``hotpath demo`` (:mod:`.run`)."""
