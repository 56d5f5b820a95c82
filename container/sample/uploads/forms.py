from django import forms
from django.conf import settings
from django.core.validators import FileExtensionValidator

from .models import Upload

# Anyone may upload here: only pictures and PDFs, never HTML, SVG or scripts that a browser would
# run as this site (the runtime also serves media as sandboxed attachments, see docs).
ALLOWED_EXTENSIONS = ["png", "jpg", "jpeg", "gif", "webp", "pdf"]


class UploadForm(forms.ModelForm):
    file = forms.FileField(
        validators=[FileExtensionValidator(ALLOWED_EXTENSIONS)],
        widget=forms.ClearableFileInput(
            attrs={"accept": ",".join(f".{e}" for e in ALLOWED_EXTENSIONS)}
        ),
    )

    class Meta:
        model = Upload
        fields = ["title", "file"]

    def clean_file(self):
        f = self.cleaned_data["file"]
        if f.size > settings.MAX_UPLOAD_SIZE:
            raise forms.ValidationError("File too large.")
        return f
