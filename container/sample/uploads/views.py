from django.shortcuts import redirect, render

from .forms import UploadForm
from .models import Upload


def index(request):
    if request.method == "POST":
        form = UploadForm(request.POST, request.FILES)
        if form.is_valid():
            form.save()
            return redirect("index")
    else:
        form = UploadForm()
    return render(
        request, "uploads/index.html", {"form": form, "uploads": Upload.objects.all()[:50]}
    )
