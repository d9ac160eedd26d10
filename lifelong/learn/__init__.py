"""Stage 2 of the pipeline: learning. The networks (:mod:`~lifelong.learn.nets`), the fast memories
(:mod:`~lifelong.learn.memory`), the loss terms methods add up (:mod:`~lifelong.learn.terms`), the
learner contract (:mod:`~lifelong.learn.base`), one file per method (:mod:`lifelong.learn.methods`)
and the loop that runs a learner over a stream (:mod:`~lifelong.learn.loop`)."""
