import GSASR
