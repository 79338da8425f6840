"""labkit: a lab that measures outbound audio buffering between a Realtime voice agent and Twilio."""

__version__ = "0.1.0"
