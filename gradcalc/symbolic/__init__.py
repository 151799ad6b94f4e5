"""What is displayed: symbolic partials and the chain rule over a built graph."""
