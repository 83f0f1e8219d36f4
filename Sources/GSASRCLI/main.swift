print("gsasr")
