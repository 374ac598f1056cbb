//! Chaos runs of real `synod node` processes.
