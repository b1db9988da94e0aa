"""Small reusable network pieces: fused functions (`fused`), the SwiGLU feed-forward block
(`blocks`), forecast heads (`heads`), patching (`patching`) and functional RevIN (`revin`)."""
