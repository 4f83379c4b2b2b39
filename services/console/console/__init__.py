"""The web faces of amiflow: the operator console and the customer portal (a single-page app built from
`web/`), served with a same-origin proxy to the services' APIs. The console holds no data and no secret: the
browser logs in at identity and every call it makes is checked by the service that answers it."""
