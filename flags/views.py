"""The flag APIs through Django's URLs: each view hands the request to the edge (``flags.edge``), the one
implementation of OFREP and the Unleash client and frontend APIs.

In the running portal these paths never reach Django: ``pmrelease/wsgi.py`` sends them to the edge first. These
views serve everything that calls Django directly (the test client, Django's live server, ``reverse``).
"""
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

from . import edge


@csrf_exempt
def flag_api(request, **kwargs):
    status, headers, body = edge.handle(request.META, body=lambda: request.body, path=request.path_info)
    response = HttpResponse(body, status=status, content_type=None)
    for name, value in headers:
        response[name] = value
    return response


ofrep_flag = ofrep_bulk = client_features = client_register = client_metrics = flag_api
frontend = frontend_register = frontend_metrics = flag_api
