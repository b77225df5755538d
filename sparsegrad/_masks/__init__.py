"""MSG internals: the mask sampler and the installers that put it on models and optimizers."""
