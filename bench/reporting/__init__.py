"""Tables, figures and READMEs from finished run folders only."""
